"""Settlement's two inputs side by side: `db` (the database door: SessionState / Activation /
Curtailment rows) and `files` (the file door: S.csv / A.csv / M.csv), plus the price files
(`prices`) and the wire's date-time reading (`wiretime`) both use. Each returns the same frames
(settlement.core.frames), so the core never knows where its data came from."""
