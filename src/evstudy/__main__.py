from evstudy.cli import main

main()
