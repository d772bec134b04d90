from growth.cli import main

main()
