# Demo customization for version 3: the sample application on this image reports Unhealthy
# (its flag file is baked in), so the rolling upgrade must roll the first batch back.
echo "scaleset-lab demo: this OS disk comes from image version 3 (unhealthy app)" > /etc/motd
mkdir -p /var/lib/sample-app && touch /var/lib/sample-app/unhealthy
