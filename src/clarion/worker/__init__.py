"""Queue backends, the scheduler, the sweeper and the worker loop."""
