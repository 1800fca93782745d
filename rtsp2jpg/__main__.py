from rtsp2jpg.cli import main

raise SystemExit(main())
