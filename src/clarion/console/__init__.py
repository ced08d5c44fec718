"""The web console at /console/: operators' accounts, sessions, and pages over the features' services."""
