# What bench/*.sh share (source it): the median of numbers, and the machine and library versions every results JSON
# records.
# median N...
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
# environment_json PETSEG LOG: a JSON object (date, CPU, cores, OS, petseg's version, the libtorch LOG names).
environment_json() {
  local libtorch
  libtorch=$(grep -o 'libtorch [0-9.]*' "$2" | head -1 || true)
  echo "{\"date\": \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\", \"cpu\": \"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\","
  echo "   \"cores\": $(nproc), \"os\": \"$(. /etc/os-release; echo "$PRETTY_NAME")\", \"petseg\": \"$("$1" --version)\", \"libtorch\": \"$libtorch\"}"
}
