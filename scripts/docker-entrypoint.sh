#!/bin/sh
# Entrypoint of the ICN container image (see Dockerfile).
#
#   (no arguments)           icnd --data-dir /data
#   icnd ARGS... | icnctl …  run that command as given
#   --flag ...               icnd --data-dir /data --flag ...
#   anything else            run it (e.g. sh)
#
# When icnd is to start on a data dir that has no identity yet, it waits for
# one instead of exiting, so that
#   docker exec -it icnd icnctl --data-dir /data id init
# can create it in the running container. Set ICN_WAIT_FOR_IDENTITY=0 to make
# icnd start (and fail with its own message) at once.
set -eu

if [ "$#" -eq 0 ]; then
	set -- icnd --data-dir /data
fi
case "$1" in
-*) set -- icnd --data-dir /data "$@" ;;
esac

if [ "$1" = icnd ] && [ "${ICN_WAIT_FOR_IDENTITY:-1}" != 0 ]; then
	data_dir=""
	prev=""
	for arg in "$@"; do
		case "$arg" in
		--help | -h | --version | -v | --check-config) data_dir="" && break ;;
		--data-dir=*) data_dir="${arg#--data-dir=}" ;;
		esac
		[ "$prev" = --data-dir ] && data_dir="$arg"
		prev="$arg"
	done
	if [ -n "$data_dir" ] && [ ! -e "$data_dir/identity.age" ]; then
		# PID 1 ignores signals it has no handler for: stop on docker stop.
		trap 'exit 143' TERM
		trap 'exit 130' INT
		waited=0
		while [ ! -e "$data_dir/identity.age" ]; do
			if [ $((waited % 60)) -eq 0 ]; then
				echo "icn-entrypoint: no identity in $data_dir yet; create one with" >&2
				echo "icn-entrypoint:   docker exec -it <container> icnctl --data-dir $data_dir id init" >&2
				echo "icn-entrypoint: (icnd starts as soon as $data_dir/identity.age exists)" >&2
			fi
			sleep 1
			waited=$((waited + 1))
		done
		trap - TERM INT
	fi
fi

exec "$@"
