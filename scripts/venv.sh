# Sourced (`source scripts/venv.sh`): makes the project's Python virtual
# environment if it is missing and puts its bin/ first on PATH, so
# `python3`, `spark-submit` and `dt-validate` are the environment's.
#
# The test command's Python packages (tests/requirements.txt, dtschema)
# live here, never in the system interpreter: Debian 12's is externally
# managed (PEP 668) and refuses `pip install`. The environment is cached
# outside the repository, keyed by the interpreter's version and the
# requirements, so a changed pin makes a new one:
#   $HSDAQ_CACHE/venv-<key>   (HSDAQ_CACHE defaults to /var/cache/hsdaq)
# The quick start (scripts/demo.sh) needs none of this.

hsdaq_venv() {
    local root py key dir
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    py=$(command -v python3) || { echo "venv: python3 not found" >&2; return 1; }
    key=$({ "$py" -c 'import sys; print(sys.version)'; cat "$root/tests/requirements.txt"; } \
        | sha256sum | cut -c1-16)
    dir=${HSDAQ_CACHE:-/var/cache/hsdaq}/venv-$key
    if [[ ! -f $dir/.ready ]]; then
        echo "venv: making $dir (tests/requirements.txt; ~1-3 minutes on first use)" >&2
        rm -rf "$dir"
        mkdir -p "$(dirname "$dir")"
        "$py" -m venv "$dir" || {
            echo "venv: python3 -m venv failed; on Debian: apt-get install python3-venv" >&2
            return 1
        }
        "$dir/bin/python3" -m pip install -q --disable-pip-version-check \
            -r "$root/tests/requirements.txt" || return 1
        touch "$dir/.ready"
    fi
    HSDAQ_VENV=$dir
    export HSDAQ_VENV
    case ":$PATH:" in *":$dir/bin:"*) ;; *) PATH=$dir/bin:$PATH ;; esac
    export PATH
}
hsdaq_venv
