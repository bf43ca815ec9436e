// Package deploy holds no Go code of its own: it is the deployment kit
// (systemd units, example config files, a cloud-init user-data file and the
// guide in README.md), and this package's tests check the kit against the
// real binaries, so that a renamed flag or a unit systemd would reject
// fails CI instead of an operator's first boot.
package deploy
