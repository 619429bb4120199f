# Demo customization for version 2: runs inside the image root at build time.
echo "scaleset-lab demo: this OS disk comes from image version 2" > /etc/motd
