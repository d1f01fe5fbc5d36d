package io.xpstream.flink;

import java.time.Instant;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.table.annotation.ArgumentHint;
import org.apache.flink.table.annotation.ArgumentTrait;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.annotation.StateHint;
import org.apache.flink.table.functions.ProcessTableFunction;
import org.apache.flink.types.Row;

/**
 * Exposure attribution on the JVM: the kernel's rule (pipelines/attribution.py) per unit, as a Process
 * Table Function called from the job's SQL with {@code PARTITION BY unit_id} over the union of the
 * exposures and events the job judged {@code ok} (deduplicated).
 *
 * <p>Per unit (the partition): the first exposure per experiment (time and variation; an earlier one moves
 * it back), in the order the experiments were first seen; the events held for {@code hold_us} of
 * processing time with the experiments each is attributed to. An event is attributed to experiment x
 * when {@code first <= occurred <= first + window(x, event_name)} (no end for a window below 0), with the
 * variation of the first exposure, when it arrives; an exposure that changes the unit's state attributes
 * the held events it now covers (never twice to one experiment). Held events past the hold are released
 * before a record of their unit is handled (the kernel releases them per batch: no output either way).
 *
 * <p>State lives in Flink's checkpoints (no TTL on exposures: the kernel keeps them too; held events are
 * pruned on the unit's next record and expire after 24 h idle). At most {@code max_held} events are held
 * per unit: holding one more releases the unit's oldest; a record whose id (per kind) the unit had within
 * {@code retention_ms} is ignored, as the kernel's deduplication by id drops it (the overload rule in trust mode, decision 0105;
 * the kernel's cap is global).
 */
@DataTypeHint(
    "ROW<event_id STRING, experiment_key STRING, variation_id INT, event_name STRING, metric DOUBLE,"
        + " occurred_us BIGINT, first_us BIGINT>")
public class AttributeEvents extends ProcessTableFunction<Row> {
  private static final long serialVersionUID = 1L;

  /** First exposures of one unit: parallel arrays, in first-seen order. */
  public static class Exposures {
    public String[] keys = new String[0];
    public long[] firstUs = new long[0];
    public int[] variations = new int[0];
  }

  /** Events of one unit held for late exposures: parallel arrays, in arrival order. */
  public static class Held {
    public String[] ids = new String[0];
    public String[] names = new String[0];
    public Double[] metrics = new Double[0];
    public long[] occurredUs = new long[0];
    public long[] heldAtMs = new long[0];
    /** Experiments each event is attributed to, joined by U+0001 (keys hold no control character). */
    public String[] done = new String[0];
  }

  /** Ids (kind + id) of the unit's records seen within the dedup retention, in arrival order. */
  public static class Seen {
    public String[] ids = new String[0];
    public long[] atMs = new long[0];
  }

  private static final String SEP = "\u0001";

  private transient String windowsSpec;
  private transient long defaultWindowUs;
  private transient Map<String, Long> windows;

  public void eval(
      @StateHint(ttl = "0") Exposures exposures,
      @StateHint(ttl = "24 h") Held held,
      @StateHint(ttl = "24 h") Seen seen,
      @ArgumentHint(value = ArgumentTrait.SET_SEMANTIC_TABLE, name = "input") Row input,
      @ArgumentHint(name = "hold_ms") Long holdMs,
      @ArgumentHint(name = "default_window_us") Long defaultWindowUs,
      @ArgumentHint(name = "windows_spec") String windowsSpec,
      @ArgumentHint(name = "max_held") Long maxHeld,
      @ArgumentHint(name = "retention_ms") Long retentionMs) {
    parseWindows(defaultWindowUs, windowsSpec);
    long now = System.currentTimeMillis();
    release(held, now - holdMs);
    String kind = input.getFieldAs("kind");
    if (!firstSeen(seen, kind + SEP + input.getFieldAs("rec_id"), now, now - retentionMs)) {
      return; // the kernel drops a re-sent id within its retention, whatever its bytes
    }
    long atUs = toMicros(input.getFieldAs("at"));
    if ("x".equals(kind)) {
      if (observe(exposures, input.getFieldAs("experiment_key"), input.getFieldAs("variation_id"), atUs)) {
        attributeHeld(exposures, held);
      }
      return;
    }
    String eventId = input.getFieldAs("rec_id");
    for (String id : held.ids) {
      if (id.equals(eventId)) {
        return; // the kernel deduplicates by id: a copy with other bytes is not attributed twice
      }
    }
    String name = input.getFieldAs("event_name");
    Double metric = input.getFieldAs("metric");
    StringBuilder done = new StringBuilder();
    for (int i = 0; i < exposures.keys.length; i++) {
      if (covers(exposures.keys[i], exposures.firstUs[i], name, atUs)) {
        collect(Row.of(eventId, exposures.keys[i], exposures.variations[i], name, metric, atUs, exposures.firstUs[i]));
        done.append(SEP).append(exposures.keys[i]);
      }
    }
    if (holdMs > 0) {
      if (held.ids.length >= maxHeld) { // the overload rule: the unit's oldest held events go first
        drop(held, held.ids.length - (int) Math.max(0L, maxHeld - 1));
      }
      int n = held.ids.length;
      held.ids = append(held.ids, eventId);
      held.names = append(held.names, name);
      Double[] metrics = java.util.Arrays.copyOf(held.metrics, n + 1);
      metrics[n] = metric;
      held.metrics = metrics;
      held.occurredUs = append(held.occurredUs, atUs);
      held.heldAtMs = append(held.heldAtMs, now);
      held.done = append(held.done, done.toString() + SEP);
    }
  }

  /** Remember {@code id} at {@code now}; false when it was seen since {@code horizonMs} (older ones are forgotten). */
  private static boolean firstSeen(Seen seen, String id, long now, long horizonMs) {
    int n = 0;
    while (n < seen.atMs.length && seen.atMs[n] < horizonMs) {
      n++;
    }
    if (n > 0) {
      seen.ids = java.util.Arrays.copyOfRange(seen.ids, n, seen.ids.length);
      seen.atMs = java.util.Arrays.copyOfRange(seen.atMs, n, seen.atMs.length);
    }
    for (String known : seen.ids) {
      if (known.equals(id)) {
        return false;
      }
    }
    seen.ids = append(seen.ids, id);
    seen.atMs = append(seen.atMs, now);
    return true;
  }

  /** Update the first exposure; true when the unit's state changed (a new experiment, an earlier time). */
  private static boolean observe(Exposures state, String key, Integer variation, long atUs) {
    for (int i = 0; i < state.keys.length; i++) {
      if (state.keys[i].equals(key)) {
        if (atUs < state.firstUs[i]) {
          state.firstUs[i] = atUs;
          state.variations[i] = variation;
          return true;
        }
        return false;
      }
    }
    state.keys = append(state.keys, key);
    state.firstUs = append(state.firstUs, atUs);
    state.variations = java.util.Arrays.copyOf(state.variations, state.variations.length + 1);
    state.variations[state.variations.length - 1] = variation;
    return true;
  }

  private void attributeHeld(Exposures state, Held held) {
    for (int e = 0; e < held.ids.length; e++) {
      String done = held.done[e];
      for (int i = 0; i < state.keys.length; i++) {
        String key = state.keys[i];
        if (done.contains(SEP + key + SEP) || !covers(key, state.firstUs[i], held.names[e], held.occurredUs[e])) {
          continue;
        }
        collect(Row.of(held.ids[e], key, state.variations[i], held.names[e], held.metrics[e], held.occurredUs[e], state.firstUs[i]));
        done = done + key + SEP;
      }
      held.done[e] = done;
    }
  }

  private boolean covers(String key, long firstUs, String name, long occurredUs) {
    if (occurredUs < firstUs) {
      return false;
    }
    Long window = windows.get(key + SEP + name);
    long limit = window == null ? defaultWindowUs : window;
    return limit < 0 || occurredUs - firstUs <= limit;
  }

  /** Drop held events held before {@code horizonMs} (they stay in arrival order, so a prefix). */
  private static void release(Held held, long horizonMs) {
    int n = 0;
    while (n < held.heldAtMs.length && held.heldAtMs[n] < horizonMs) {
      n++;
    }
    drop(held, n);
  }

  /** Drop the {@code n} oldest held events. */
  private static void drop(Held held, int n) {
    if (n <= 0) {
      return;
    }
    int len = held.ids.length;
    held.ids = java.util.Arrays.copyOfRange(held.ids, n, len);
    held.names = java.util.Arrays.copyOfRange(held.names, n, len);
    held.metrics = java.util.Arrays.copyOfRange(held.metrics, n, len);
    held.occurredUs = java.util.Arrays.copyOfRange(held.occurredUs, n, len);
    held.heldAtMs = java.util.Arrays.copyOfRange(held.heldAtMs, n, len);
    held.done = java.util.Arrays.copyOfRange(held.done, n, len);
  }

  /**
   * The windows: {@code default} in microseconds (below 0: no end) and the spec, one
   * {@code experiment U+0001 event_name U+0001 micros} per U+0002-separated item (built by job_sql.py).
   */
  private void parseWindows(long defaultUs, String spec) {
    if (windows != null && spec.equals(windowsSpec) && defaultUs == defaultWindowUs) {
      return;
    }
    Map<String, Long> parsed = new HashMap<>();
    if (!spec.isEmpty()) {
      for (String item : spec.split("\u0002")) {
        int last = item.lastIndexOf(SEP);
        parsed.put(item.substring(0, last), Long.parseLong(item.substring(last + 1)));
      }
    }
    windows = parsed;
    windowsSpec = spec;
    defaultWindowUs = defaultUs;
  }

  /**
   * An RFC 3339 UTC time (the job passes only those as ok) in epoch microseconds, truncated to whole
   * milliseconds as the kernel's records are ({@code schemas.records.utc_ms}).
   */
  static long toMicros(String text) {
    Instant at = Instant.parse(text);
    return Math.addExact(Math.multiplyExact(at.getEpochSecond(), 1_000_000L), at.getNano() / 1_000_000L * 1_000L);
  }

  private static String[] append(String[] a, String v) {
    String[] out = java.util.Arrays.copyOf(a, a.length + 1);
    out[a.length] = v;
    return out;
  }

  private static long[] append(long[] a, long v) {
    long[] out = java.util.Arrays.copyOf(a, a.length + 1);
    out[a.length] = v;
    return out;
  }
}
