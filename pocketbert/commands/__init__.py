"""One module per `pocketbert` subcommand (see pocketbert/cli.py for the contract)."""
