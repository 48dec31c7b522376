#!/usr/bin/env bash
# Turns a debootstrap'ed Debian bookworm folder into a stand-in for python:3.11-slim-bookworm:
# `python` and `pip` on PATH as in the official image, pip allowed to install system-wide (the official image has
# no Debian-managed Python to protect), and the host's CA bundle so pip reaches the package index through a
# TLS-inspecting proxy.
set -euo pipefail
root=$1
rm -f "$root"/usr/lib/python3*/EXTERNALLY-MANAGED
ln -sf /usr/bin/python3 "$root/usr/local/bin/python"
ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
