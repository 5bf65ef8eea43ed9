from cfosstats.entry import main

main()
