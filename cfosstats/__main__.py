from cfosstats.cli.entry import main

main()
