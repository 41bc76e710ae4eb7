from trackwrap.cli import main

raise SystemExit(main())
