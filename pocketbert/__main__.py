from pocketbert.cli import main

raise SystemExit(main())
