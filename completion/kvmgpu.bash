# shellcheck shell=bash
# Bash completion for kvmgpu: commands, options, profiles, running VM names, PCI addresses.
#
# What kvmgpu accepts is asked of kvmgpu itself, so this file cannot drift from it: the commands
# from `kvmgpu --help`, a command's options and which of them take a value (and what kind:
# DIR, FILE, ADDRESS) from `kvmgpu help COMMAND`, the running VMs from `kvmgpu ps`. The
# --runtime-dir and --host-root already on the line are passed on, so the names and addresses
# offered are those the completed command will see.
# Installed as share/bash-completion/completions/kvmgpu, where bash-completion loads it on demand.

# The commands, one a line, from the "Commands:" block of `kvmgpu --help`.
_kvmgpu_commands() {
  "$1" --help 2>/dev/null | awk '/^Commands:/ { on = 1; next } on && /^$/ { exit } on { print $1 }'
}

# "--option VALUE_NAME" for each option (boost prints "  --opt NAME" or "  -o [ --opt ] NAME") of a command (VALUE_NAME empty for a switch), one a line;
# the global options alone without a command ($2 empty).
_kvmgpu_options() {
  local ask=(help "$2")
  [ -n "$2" ] || ask=(--help)
  "$1" "${ask[@]}" 2>/dev/null |
    awk 'match($0, /^  (-[A-Za-z0-9] \[ )?--[a-z][a-z0-9-]*( \])?( [A-Z][A-Z_]*)?/) {
           s = substr($0, RSTART, RLENGTH); sub(/^ *(-[A-Za-z0-9] \[ )?/, "", s); sub(/ \]/, "", s); print s }'
}

# The value of a global option already on the command line ($1: the option), else nothing.
_kvmgpu_word_value() {
  local i
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      "$1") printf '%s' "${COMP_WORDS[i + 1]:-}"; return ;;
      "$1"=*) printf '%s' "${COMP_WORDS[i]#*=}"; return ;;
    esac
  done
}

# The names of the running VMs, from `kvmgpu ps` (first column, after the header line).
_kvmgpu_vms() {
  local kvmgpu=$1 dir
  local args=()
  dir=$(_kvmgpu_word_value --runtime-dir)
  [ -z "$dir" ] || args+=(--runtime-dir "$dir")
  "$kvmgpu" "${args[@]}" ps 2>/dev/null | awk 'NR > 1 { print $1 }'
}

# The host's PCI addresses, from sys/bus/pci/devices under the host root kvmgpu would use.
_kvmgpu_pci_addresses() {
  local root d
  root=$(_kvmgpu_word_value --host-root)
  root=${root:-${KVMGPU_HOST_ROOT:-/}}
  for d in "${root%/}"/sys/bus/pci/devices/*; do
    [ -e "$d" ] && printf '%s\n' "${d##*/}"
  done
}

# Profile names from the directories `kvmgpu run NAME` looks in (KVMGPU_PROFILE_PATH when set, else
# $XDG_CONFIG_HOME/kvmgpu and /etc/kvmgpu), for `run NAME` and the like; files are completed as well.
_kvmgpu_profile_names() {
  local f d dirs=()
  if [ -n "${KVMGPU_PROFILE_PATH+set}" ]; then
    IFS=: read -r -a dirs <<<"$KVMGPU_PROFILE_PATH"
  else
    dirs=("${XDG_CONFIG_HOME:-$HOME/.config}/kvmgpu" /etc/kvmgpu)
  fi
  for d in "${dirs[@]}"; do
    for f in "$d"/*.toml; do
      [ -e "$f" ] || continue
      f=${f##*/}
      printf '%s\n' "${f%.toml}"
    done
  done
}

# Adds the lines of $1 that start with the current word to COMPREPLY.
_kvmgpu_add() {
  local line
  while IFS= read -r line; do
    [ -n "$line" ] && [[ $line == "$cur"* ]] && COMPREPLY+=("$line")
  done <<<"$1"
}

# Adds what `compgen ARGS` finds for the current word (files, directories), shown as file names.
_kvmgpu_add_files() {
  local line
  compopt -o filenames 2>/dev/null || true
  while IFS= read -r line; do
    [ -n "$line" ] && COMPREPLY+=("$line")
  done < <(compgen "$@" -- "$cur")
}

_kvmgpu() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]:-}
  local kvmgpu=${COMP_WORDS[0]}
  COMPREPLY=()
  command -v "$kvmgpu" >/dev/null 2>&1 || kvmgpu=kvmgpu

  # The command word: the first word that is neither an option nor a global option's value.
  local i word command="" options
  local with_value
  with_value=$(_kvmgpu_options "$kvmgpu" "" | awk 'NF == 2 { print $1 }')
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${COMP_WORDS[i]}
    if [[ $word == -* ]]; then
      [[ $word == *=* ]] || ! grep -qx -- "$word" <<<"$with_value" || ((i++))
      continue
    fi
    command=$word
    break
  done

  options=$(_kvmgpu_options "$kvmgpu" "$command")
  # The value of an option: its kind is the value name `kvmgpu help` shows.
  local kind
  kind=$(awk -v o="$prev" '$1 == o { print $2 }' <<<"$options")
  if [ -n "$kind" ] && [[ $cur != -* || $kind == ADDRESS ]]; then
    case "$kind" in
      DIR) _kvmgpu_add_files -d ;;
      FILE) _kvmgpu_add_files -f ;;
      ADDRESS) _kvmgpu_add "$(_kvmgpu_pci_addresses)" ;;
    esac
    return 0
  fi

  if [[ $cur == -* ]]; then
    _kvmgpu_add "$(awk '{ print $1 }' <<<"$options")"
    return 0
  fi

  if [ -z "$command" ]; then
    _kvmgpu_add "$(_kvmgpu_commands "$kvmgpu")"$'\n'help
    return 0
  fi

  # The command's usage (`kvmgpu help COMMAND`'s first line) says what its words are.
  local usage
  usage=$("$kvmgpu" help "$command" 2>/dev/null | sed -n '1s/^Usage: kvmgpu [^ ]* *//p')
  case "$usage" in
    PROFILE* | "NAME|PROFILE"* | *"PROFILE |"*)
      _kvmgpu_add "$(_kvmgpu_profile_names)"
      _kvmgpu_add_files -f -X '!*.toml'
      _kvmgpu_add_files -d
      ;;
    NAME* | "[NAME"*) _kvmgpu_add "$(_kvmgpu_vms "$kvmgpu")" ;;
    ADDRESS*) _kvmgpu_add "$(_kvmgpu_pci_addresses)" ;;
    COMMAND* | "") [ "$command" != help ] || _kvmgpu_add "$(_kvmgpu_commands "$kvmgpu")" ;;
  esac
  return 0
}

complete -F _kvmgpu kvmgpu
