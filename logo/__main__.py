from logo.cli import main

raise SystemExit(main())
