from sio_sniffer.cli import main

raise SystemExit(main())
