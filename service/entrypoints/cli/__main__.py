from service.entrypoints.cli.main import main

main()
