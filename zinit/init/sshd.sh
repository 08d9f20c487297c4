# sshd.sh: OpenSSH server in the foreground, with host keys made on first start.
. /etc/zinit/init/lib.sh

# sshd re-executes itself, so it needs its absolute path.
sshd=$(find_cmd sshd /usr/sbin/sshd) || idle "sshd is not installed"
mkdir -p /var/empty /root/.ssh
chmod 700 /root/.ssh
if command -v ssh-keygen >/dev/null 2>&1; then
	ssh-keygen -A || log "ssh-keygen -A failed"
fi
# A broken configuration would make sshd exit and zinit restart it every 2 s.
"$sshd" -t || idle "sshd configuration test failed"
exec "$sshd" -D -e
