#!/bin/sh
# icn-backup.sh: back up an ICN node while it runs. Install it as
# /usr/local/bin/icn-backup.sh and run it daily as the icn user (see
# configs/icn-backup.service and configs/icn-backup.timer, and
# docs/operations.md#backing-up-the-data-directory).
#
# It writes, into $ICN_BACKUP_DIR (default /var/backups/icn):
#   ledger-YYYY-MM-DD.car   every ledger entry, taken with `icnctl ledger
#                           backup`: consistent although icnd keeps running
#   icn-YYYY-MM-DD.tar.gz   the data dir without the datastore: identity.age
#                           (encrypted) and anything else beside it
# and deletes the ones older than $ICN_BACKUP_KEEP_DAYS days (default 14).
# A copy of the live datastore directory is never taken: its files change
# while they are read. Restore with `icnctl ledger restore FILE`.
#
# Environment: ICN_DATA_DIR (default /var/lib/icn), ICN_BACKUP_DIR,
# ICN_BACKUP_KEEP_DAYS, ICNCTL (default icnctl on PATH).
set -eu

data_dir=${ICN_DATA_DIR:-/var/lib/icn}
dest=${ICN_BACKUP_DIR:-/var/backups/icn}
keep_days=${ICN_BACKUP_KEEP_DAYS:-14}
icnctl=${ICNCTL:-icnctl}
day=$(date +%F)

case $keep_days in
'' | *[!0-9]*)
	echo "icn-backup: ICN_BACKUP_KEEP_DAYS must be a whole number of days, not '$keep_days'" >&2
	exit 2
	;;
esac
if [ ! -f "$data_dir/identity.age" ]; then
	echo "icn-backup: $data_dir holds no identity.age; set ICN_DATA_DIR to the node's data dir" >&2
	exit 2
fi

umask 077
mkdir -p "$dest"

# The ledger, from the running node (it fails, and so does this script, if
# icnd is not running: a stopped node's data dir can simply be archived).
"$icnctl" --data-dir "$data_dir" ledger backup --force "$dest/ledger-$day.car"

# The rest of the data dir. The archive is renamed into place only once
# complete.
partial="$dest/.icn-$day.tar.gz.partial"
trap 'rm -f "$partial"' EXIT
tar -C "$data_dir" --exclude=./datastore --exclude='./datastore.*' --exclude=./icnd.sock -czf "$partial" .
mv "$partial" "$dest/icn-$day.tar.gz"

find "$dest" -maxdepth 1 -type f \( -name 'ledger-*.car' -o -name 'icn-*.tar.gz' \) -mtime +"$keep_days" -delete
echo "icn-backup: wrote $dest/ledger-$day.car and $dest/icn-$day.tar.gz"
