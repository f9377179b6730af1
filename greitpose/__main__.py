from greitpose.cli import main

main()
