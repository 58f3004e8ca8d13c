#!/usr/bin/env bash
# End-to-end tests of the web page (docs/web.md): builds the debug chatd,
# installs what the browser tests need when it is missing (Debian's
# chromium, playwright-core from tests/web/package-lock.json), and runs
# tests/web with node's test runner. Exits non-zero when a test fails.
#
#   UPDATE_SCREENSHOT=1 ./scripts/web-test.sh   also rewrites docs/web-screenshot.png
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "web-test: installing Debian's chromium"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends chromium
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "web-test: node and npm are needed (Node.js 20 or later)" >&2
  exit 1
fi

# Playwright must not fetch a browser of its own: Debian's is used.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
wanted=$(node -p "require('./tests/web/package.json').devDependencies['playwright-core']")
have=$(node -p "try { require('./tests/web/node_modules/playwright-core/package.json').version } catch { '' }")
if [ "$wanted" != "$have" ]; then
  echo "web-test: npm ci in tests/web"
  (cd tests/web && npm ci --no-audit --no-fund)
fi

cargo build -p chatd

cd tests/web
exec node --test --test-concurrency=1 --test-reporter=spec web.test.js
