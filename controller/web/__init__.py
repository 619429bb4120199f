"""The web view: the lab's scale sets, the update-domain heat map and the rollout as it
happens, served on the API's https://127.0.0.1 server under /lab."""
