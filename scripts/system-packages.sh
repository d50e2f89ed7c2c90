#!/usr/bin/env bash
# System packages of Conveyor's optional parts: Java and the JDBC drivers of the spark job
# type (Debian: default-jre-headless is OpenJDK 17 on bookworm; the drivers land in
# /usr/share/java/postgresql.jar and /usr/share/java/mariadb-java-client.jar), and Debian's
# Chromium, which the web dashboard's browser tests drive through Playwright (Playwright's own
# browser download is not used: tests/web/conftest.py points it at /usr/bin/chromium).
set -euo pipefail

need_apt=()
command -v java >/dev/null || need_apt+=(default-jre-headless)
[ -f /usr/share/java/postgresql.jar ] || need_apt+=(libpostgresql-jdbc-java)
[ -f /usr/share/java/mariadb-java-client.jar ] || need_apt+=(libmariadb-java)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "system-packages: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # slim images drop man pages; the JRE's postinst expects the folder
  mkdir -p /usr/share/man/man1
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
java -version 2>&1 | head -1
/usr/bin/chromium --version 2>/dev/null | head -1
