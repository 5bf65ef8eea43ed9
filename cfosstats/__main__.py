from cfosstats.cli import main

main()
