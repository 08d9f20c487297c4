# getty.sh TTY [SPEED] [TERM]: a login prompt on /dev/TTY.
. /etc/zinit/init/lib.sh

tty=${1:?usage: getty.sh TTY [SPEED] [TERM]}
speed=${2:-115200}
term=${3:-vt100}

getty=$(find_cmd getty /sbin/getty /sbin/agetty /usr/sbin/agetty) || idle "no getty is installed"
# A serial port with no UART behind it cannot be opened; getty would exit and
# zinit restart it every 2 s forever.
stty -F "/dev/$tty" >/dev/null 2>&1 || idle "/dev/$tty cannot be opened"
exec "$getty" -L "$speed" "$tty" "$term"
