"""Assignment by choice: the vans a dispatcher may send to one request, and why not the others."""
