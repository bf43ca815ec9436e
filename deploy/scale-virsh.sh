#!/bin/sh
# deploy/scale-virsh.sh: a controller --scale-command that grows and shrinks
# the farm from a pool of KVM guests on this host, with virsh.
#
# The pool: workers prepared as in deploy/README.md section 6, each a
# libvirt domain named as its worker (w1, w2, ...), registered on the
# controller and then shut off (virsh shutdown). The controller runs
#
#   scale-virsh.sh up N ARCH [KEY=VALUE,...]   steps wait for N more slots
#   scale-virsh.sh down WORKER                 WORKER is drained and idle
#
# with the farm's state as JSON on stdin (ignored here). "up" starts up to
# N shut-off guests whose names begin with the pool prefix for ARCH
# (DISTBUILD_POOL_x86_64, DISTBUILD_POOL_aarch64, ...; default "w"); each
# boots and its worker registers. Steps needing tags are only started on
# guests whose worker.yaml has them: give such guests their own prefix
# and, if you need to, pick it from the tags in $4. "down" shuts the guest
# down; its worker has already drained and stopped, so nothing is lost.
# Give the pool's workers a tag of their own (tag: provisioned: virsh in
# their worker.yaml) and run the controller with --scale-down-tag
# provisioned=virsh, so that workers started by hand are never removed.
# LIBVIRT_DEFAULT_URI chooses the hypervisor (e.g. qemu:///system).
set -eu

action=${1:?usage: scale-virsh.sh up N ARCH [TAGS] | down WORKER}
case "$action" in
up)
	count=${2:?up needs a count}
	arch=${3:?up needs an architecture}
	prefix=$(printenv "DISTBUILD_POOL_$(echo "$arch" | tr -c 'A-Za-z0-9_\n' _)" || echo w)
	started=0
	for guest in $(virsh list --name --state-shutoff); do
		[ "$started" -lt "$count" ] || break
		case "$guest" in
		"$prefix"*)
			virsh start "$guest" >/dev/null
			echo "started $guest for $arch"
			started=$((started + 1))
			;;
		esac
	done
	if [ "$started" -lt "$count" ]; then
		echo "asked for $count $arch workers, started $started: the pool has no more shut-off guests named $prefix*" >&2
	fi
	;;
down)
	guest=${2:?down needs a worker name}
	virsh shutdown "$guest" >/dev/null
	echo "shut down $guest"
	;;
*)
	echo "scale-virsh.sh: unknown action $action" >&2
	exit 2
	;;
esac
