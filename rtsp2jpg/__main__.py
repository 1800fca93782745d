from rtsp2jpg.cli.main import main

raise SystemExit(main())
