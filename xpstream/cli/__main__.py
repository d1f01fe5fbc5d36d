from xpstream.cli.main import main

main()
