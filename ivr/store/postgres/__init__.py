"""The PostgreSQL call store, for several servers sharing one database:
its connections (a pool, used from a bounded thread pool), migrations,
group commit off the reactor, and leases."""
