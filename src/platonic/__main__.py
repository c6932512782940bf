from platonic.cli import main

raise SystemExit(main())
