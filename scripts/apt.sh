# Sourced by the setup scripts (scripts/setup.sh, hil/setup-toolchain.sh,
# scripts/dist.sh): the one way they install Debian packages, idempotently.
# The caller defines `log`. Root, Debian bookworm.

# installed NAME[=VERSION]: that package (at that version) is installed.
installed() {
    local name=${1%%=*} want=${1#*=} st
    st=$(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null) || return 1
    [[ $st == "install ok installed "* ]] || return 1
    [[ $1 != *=* || ${st##* } == "$want" ]]
}

# apt_need [-t SUITE] PKG[=VERSION]...: installs the packages not present
# (at the pinned version, downgrading if need be), from SUITE if given;
# the package lists are refreshed first, only when something is missing.
apt_need() {
    local from=() missing=() p
    if [[ ${1:-} == -t ]]; then
        from=(-t "$2")
        shift 2
    fi
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    log "apt-get install ${from[*]:+${from[*]} }${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        --allow-downgrades "${from[@]}" "${missing[@]}" >/dev/null
}

# apt_arch ARCH...: adds foreign architectures (for cross std and libraries).
apt_arch() {
    local archs a added=0
    # Read into a variable first: under pipefail, `grep -q` leaving early
    # would make dpkg's pipe fail once it prints more than one architecture.
    archs=$(dpkg --print-foreign-architectures)
    for a in "$@"; do
        grep -qx "$a" <<<"$archs" && continue
        log "dpkg --add-architecture $a"
        dpkg --add-architecture "$a"
        added=1
    done
    ((added == 0)) || apt-get update -qq
}
