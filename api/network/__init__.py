"""The network: stations, vans, partners and replacement trucks (listings, van position
reports, seeding a network into the database)."""
