from postar.cli import main

main()
