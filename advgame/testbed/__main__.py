from advgame.testbed.run import main

raise SystemExit(main())
