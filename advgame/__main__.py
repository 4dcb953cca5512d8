from advgame.cli import main

raise SystemExit(main())
