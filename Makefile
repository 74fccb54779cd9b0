# ConnectXpert. `make run` and `make test` install what they need (Debian packages, PyPI tools).
SWIFT      ?= swift
BINARY     := .build/debug/connectxpert
RELEASE    := .build/release/connectxpert
PREFIX     ?= /usr/local
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Build: the C libraries (libssh2, libcurl, libinotifytools, SQLite, X11/XTest/DAMAGE, zlib,
# OpenSSL).
# Tests: systemd-analyze for the units; sshd, sftp, dropbear and rclone (rclone serve sftp) for the SFTP
# tests, and paramiko for the hostile SFTP server; vsftpd and openssl (its certificate) for the FTP tests,
# and libsodium23 for pure-ftpd (whose binary scripts/test-servers/pure-ftpd takes out of its package,
# which conflicts with vsftpd's); aiosmtpd and Dovecot for the mail tests; Xvfb for the screen share
# (whose Python tools, vncdotool among them, come from PyPI into .build/test-venv); age, the stock CLI the
# sealed files must open with; libpython3.11-testsuite for CPython's email test messages, the corpus the
# mail reading is compared on with Python's email package.
# Bench: inotifywait, and the peers the agent is measured against.
APT_BUILD  := libssh2-1-dev libcurl4-openssl-dev libinotifytools0-dev libsqlite3-dev libx11-dev libxext-dev \
              libxtst-dev libxdamage-dev libxfixes-dev zlib1g-dev libssl-dev
APT_TEST   := inotify-tools systemd openssh-server openssh-client dropbear-bin rclone python3-paramiko vsftpd \
              libsodium23 openssl python3-aiosmtpd dovecot-imapd xvfb python3-venv age libpython3.11-testsuite \
              chromium novnc websockify tmux
APT_BENCH  := lftp msmtp getmail6 isync x11vnc

.PHONY: all deps test-deps build run test chaos fuzz bench demo install install-sendmail clean

all: build

deps:
	@scripts/apt-install $(APT_BUILD)

test-deps: deps
	@scripts/apt-install $(APT_TEST)
	@scripts/screen-test/python-tools >/dev/null

build: deps
	$(SWIFT) build

run: build
	$(BINARY) run --policy policies.yaml

# The tests' temporary files (100 MiB sources among them) go to a folder of this run, removed
# afterwards. It is readable by all: the test servers read the files in it as their test login.
# The agent's transfers are then run again with the release build users install, as optimization
# can break what the debug build does right (a two-stream upload crashed in release only): the
# exchanges over SFTP and FTP, a 200 MiB two-stream upload, kill -9 during 500 uploads and a resumed
# download (the tests that stop a server mid-transfer are left out: at release speed the transfer
# can end before the server stops), and kill -9 during 200 sealed transfers.
RELEASE_TESTS := agentsExchangeFiles|noPartialFileIsEverVisible|killDashNineDuring|anInterruptedDownloadResumes

test: test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) build -c release
	@scratch=$$(mktemp -d /tmp/cx-test-run.XXXXXX) && chmod 755 $$scratch && \
	TMPDIR=$$scratch CONNECTXPERT_BINARY=$(CURDIR)/$(BINARY) $(SWIFT) test --skip-build && \
	TMPDIR=$$scratch CONNECTXPERT_BINARY=$(CURDIR)/$(RELEASE) $(SWIFT) test --skip-build --filter '$(RELEASE_TESTS)'; \
	status=$$?; rm -rf $$scratch; exit $$status
	$(MAKE) --no-print-directory chaos CHAOS_FILES=300 CHAOS_KILLS=10
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(TEST_FUZZ_SECONDS)

# A crash trial (scripts/chaos) on each drop, the local folder and the test sshd: two daemons exchange
# CHAOS_FILES files of 0 B to 8 MiB while each is killed CHAOS_KILLS times at random moments; every
# file must then arrive once and whole, with no temporary file left. `make test` runs a shorter one.
CHAOS_FILES ?= 1000
CHAOS_KILLS ?= 20

chaos: test-deps
	$(SWIFT) build -c release
	scripts/chaos $(RELEASE) --drop local --files $(CHAOS_FILES) --kills $(CHAOS_KILLS)
	scripts/chaos $(RELEASE) --drop sftp --files $(CHAOS_FILES) --kills $(CHAOS_KILLS)

# The parsers of what others write (policies.yaml, sizes and durations, mail, FTP listings, an RFB
# viewer's messages) under libFuzzer and AddressSanitizer (Fuzz/): each target FUZZ_SECONDS over
# its corpus, Fuzz/Corpus/TARGET/, which keeps every input that once crashed it. `make test` runs
# each for TEST_FUZZ_SECONDS.
FUZZ_TARGETS      := FuzzPolicy FuzzValues FuzzMail FuzzFTPListing FuzzRFBClient
FUZZ_SECONDS      ?= 600
TEST_FUZZ_SECONDS := 20

fuzz: deps
	cd Fuzz && $(SWIFT) build -Xswiftc -sanitize=fuzzer,address -Xswiftc -use-ld=lld
	scripts/fuzz $(FUZZ_SECONDS) $(FUZZ_TARGETS)

bench: test-deps
	@scripts/apt-install $(APT_BENCH)
	$(SWIFT) build -c release
	python3 scripts/bench.py $(CURDIR)/$(RELEASE)
	python3 scripts/bench_servers.py $(CURDIR)/$(RELEASE)
	python3 scripts/bench_messages.py $(CURDIR)/$(RELEASE)
	$$(scripts/screen-test/python-tools) scripts/bench_screen.py $(CURDIR)/$(RELEASE)

demo: build
	scripts/demo $(CURDIR)/$(BINARY)

install:
	$(SWIFT) build -c release
	$(SUDO) install -D -m 0755 $(RELEASE) $(DESTDIR)$(PREFIX)/bin/connectxpert
	$(SUDO) install -d -m 0755 $(DESTDIR)/etc/connectxpert
	@if [ -e $(DESTDIR)/etc/connectxpert/policies.yaml ]; then \
		echo "keeping the existing /etc/connectxpert/policies.yaml"; \
	else \
		sed -e 's#^spool: spool .*#spool: /var/spool/connectxpert#' \
		    -e 's#url: file:drop .*#url: file:///var/spool/connectxpert-drop#' policies.yaml \
		| $(SUDO) install -m 0644 /dev/stdin $(DESTDIR)/etc/connectxpert/policies.yaml; \
	fi
	$(SUDO) install -d -m 0755 $(DESTDIR)/var/spool/connectxpert $(DESTDIR)/var/spool/connectxpert-drop \
		$(DESTDIR)/etc/systemd/system
	$(SUDO) install -m 0644 systemd/connectxpert.service systemd/connectxpert-batch.service \
		systemd/connectxpert-batch.path $(DESTDIR)/etc/systemd/system/

# Makes /usr/sbin/sendmail (and /usr/lib/sendmail) queue mail through the agent. Never part of
# `install`; an existing sendmail (another MTA) is left alone.
install-sendmail: install
	@for link in /usr/sbin/sendmail /usr/lib/sendmail; do \
		if [ -e $(DESTDIR)$$link ] && [ "$$(readlink $(DESTDIR)$$link)" != "$(PREFIX)/bin/connectxpert-sendmail" ]; then \
			echo "keeping the existing $$link"; \
		else \
			$(SUDO) install -d $(DESTDIR)$$(dirname $$link); \
			$(SUDO) ln -sf $(PREFIX)/bin/connectxpert-sendmail $(DESTDIR)$$link; \
		fi; \
	done
	printf '#!/bin/sh\nexec $(PREFIX)/bin/connectxpert sendmail "$$@"\n' \
		| $(SUDO) install -m 0755 /dev/stdin $(DESTDIR)$(PREFIX)/bin/connectxpert-sendmail

clean:
	rm -rf .build Fuzz/.build
