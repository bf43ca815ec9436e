#!/usr/bin/env bash
# make-trove.sh DIR [DEFINITIONS_REMOTE_URL]
#
# Turns demo/sources and demo/definitions into the git repositories that the
# demo's trove serves (DIR/git, e.g. at http://127.0.0.1:PORT/git):
#
#   DIR/git/upstream/<name>.git       one bare repository per demo/sources/<name>
#   DIR/git/baserock/definitions.git  demo/definitions, each chunk ref pinned
#   DIR/definitions                   a checkout of it, to run `initiator build` in
#
# The checkout's origin is DEFINITIONS_REMOTE_URL when given (where the trove
# serves definitions.git, e.g. http://127.0.0.1:PORT/git/baserock/definitions.git),
# and otherwise the bare repository's path.
#
# Commits have a fixed author, committer and date, and the user's and the
# system's git configuration is ignored, so the same content always gives the
# same commit SHAs: the chunks' cache keys, which include them, are the same
# on every machine and every run.
set -euo pipefail
export LC_ALL=C

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 DIR [DEFINITIONS_REMOTE_URL]" >&2
	exit 2
fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$1"
dir=$(cd "$1" && pwd)
remote=${2:-}

for existing in "$dir/git" "$dir/definitions"; do
	if [ -e "$existing" ]; then
		echo "$0: $existing already exists; refusing to overwrite it" >&2
		exit 1
	fi
done

unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME="distbuild demo" GIT_COMMITTER_NAME="distbuild demo"
export GIT_AUTHOR_EMAIL="demo@distbuild.invalid" GIT_COMMITTER_EMAIL="demo@distbuild.invalid"
export GIT_AUTHOR_DATE="2024-01-01T00:00:00+0000" GIT_COMMITTER_DATE="2024-01-01T00:00:00+0000"
branch=master

work=$(mktemp -d "${TMPDIR:-/tmp}/make-trove.XXXXXX")
trap 'rm -rf "$work"' EXIT

# import SRC BARE MESSAGE commits the files of directory SRC (less what its
# .gitignore excludes, such as build products) as the only commit of a new
# bare repository BARE, and prints the commit's SHA.
import() {
	local src=$1 bare=$2 msg=$3
	local tree
	tree=$(mktemp -d "$work/tree.XXXXXX")
	cp -R "$src/." "$tree/"
	git -C "$tree" init -q -b "$branch"
	git -C "$tree" add -A
	git -C "$tree" commit -q -m "$msg"
	git init -q --bare -b "$branch" "$bare"
	git -C "$tree" push -q "$bare" "$branch"
	git -C "$bare" update-server-info # lets dumb-HTTP clients fetch it too
	git -C "$tree" rev-parse HEAD
}

declare -A commit
mkdir -p "$dir/git/upstream" "$dir/git/baserock"
for src in "$here"/sources/*/; do
	name=$(basename "$src")
	commit[$name]=$(import "$src" "$dir/git/upstream/$name.git" "Import $name 1.0")
done

# The definitions name each source's commit as ref: "@COMMIT:<name>@", because
# the SHA depends on the source's content; pin every one of them.
defs=$(mktemp -d "$work/definitions.XXXXXX")
cp -R "$here/definitions/." "$defs/"
for morph in "$defs"/strata/*.morph; do
	text=$(<"$morph")
	for name in "${!commit[@]}"; do
		text=${text//\"@COMMIT:$name@\"/${commit[$name]}}
	done
	if [[ $text == *@COMMIT:* ]]; then
		missing=${text#*@COMMIT:}
		echo "$0: ${morph#"$defs/"} refers to source ${missing%%@*}, which is not in $here/sources" >&2
		exit 1
	fi
	printf '%s\n' "$text" >"$morph"
done
definitions=$(import "$defs" "$dir/git/baserock/definitions.git" "Demo definitions, refs pinned to the demo sources")

git clone -q "$dir/git/baserock/definitions.git" "$dir/definitions"
origin="$dir/git/baserock/definitions.git"
if [ -n "$remote" ]; then
	git -C "$dir/definitions" remote set-url origin "$remote"
	origin=$remote
fi

echo "trove content in $dir:"
echo "  git/upstream/                 ${#commit[@]} source repositories, one commit each"
echo "  git/baserock/definitions.git  definitions at $definitions"
echo "  definitions/                  checkout (origin $origin)"
echo "build with: cd $dir/definitions && initiator build systems/demo-system.morph"
