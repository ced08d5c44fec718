"""Apps (tenants): keys, hashed secrets, VAPID key pairs, plans and quotas."""
