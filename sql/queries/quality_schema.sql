-- quality_schema: the columns and types of the checked tables, for the GX schema expectations.
-- grain: table × column   engine: system.columns
-- parameters: tables Array(String) (table names in database xp)
SELECT table AS table_name, concat(name, ' ', type) AS column_type
FROM system.columns
WHERE database = 'xp' AND table IN {tables:Array(String)}
ORDER BY table_name, position
