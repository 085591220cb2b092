"""Routes of the site itself rather than of one domain: liveness, the console and the public
data it draws, the live event stream."""
