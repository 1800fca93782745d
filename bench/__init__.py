"""rtsp2jpg benchmarks: figures against the floor of the same machine, in one command (`bench/run.sh`)."""
