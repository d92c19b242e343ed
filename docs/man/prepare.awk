# Turns a docs/*.md reference into the body of a man page, for go-md2man (docs/man/render).
# The page's own NAME/SYNOPSIS/DESCRIPTION come from a front-matter file; this drops the
# document's first "# Title" line (go-md2man makes "#" and "##" man sections, .SH, and "###"
# subsections, .SS, so the other headings keep their levels), and turns links between the docs into man page
# references: profile.md → kvmgpu.toml(5), commands.md → kvmgpu(1), any other NAME.md → its
# installed copy under DOCDIR (-v docdir=...). A table becomes a list of tagged paragraphs, one
# a row, tagged by its first cell (a table of four columns does not fit a terminal's 80): each
# other cell follows as "header: cell", the header-less or "meaning" column as plain text. Fenced
# code blocks pass through untouched.

function target_ref(target,    file) {
    file = target
    sub(/#.*/, "", file)
    if (file == "") return ""
    if (file == "profile.md") return "kvmgpu.toml(5)"
    if (file == "commands.md") return "kvmgpu(1)"
    if (file ~ /^[A-Za-z0-9_.-]+\.md$/) return docdir "/" file
    return file
}

function rewrite_links(line,    out, m, text, target, ref) {
    out = ""
    while (match(line, /\[[^]]*\]\([^)]*\)/)) {
        m = substr(line, RSTART, RLENGTH)
        text = m
        sub(/\]\(.*$/, "", text)
        sub(/^\[/, "", text)
        target = m
        sub(/^\[[^]]*\]\(/, "", target)
        sub(/\)$/, "", target)
        if (target ~ /^[a-z]+:\/\//) ref = target
        else ref = target_ref(target)
        if (ref == "" || ref == text) out = out substr(line, 1, RSTART - 1) text
        else if (text ~ /\.md$/) out = out substr(line, 1, RSTART - 1) ref
        else out = out substr(line, 1, RSTART - 1) text " (" ref ")"
        line = substr(line, RSTART + RLENGTH)
    }
    return out line
}

function trim(s) { gsub(/^[ \t]+|[ \t]+$/, "", s); return s }

# Splits a "| a | b |" row into cells[1..n]; "\|" inside a cell is a literal bar.
function split_row(line, cells,    n, i, raw) {
    gsub(/\\\|/, "\001", line)
    line = trim(line)
    sub(/^\|/, "", line)
    sub(/\|$/, "", line)
    n = split(line, raw, "|")
    for (i = 1; i <= n; ++i) {
        cells[i] = trim(raw[i])
        gsub(/\001/, "|", cells[i])
    }
    return n
}

function print_table_row(line,    cells, n, i, labelled, plain, text) {
    n = split_row(line, cells)
    labelled = ""
    plain = ""
    for (i = 2; i <= n; ++i) {
        if (cells[i] == "") continue
        if (header[i] == "" || header[i] == "meaning") plain = plain (plain == "" ? "" : " ") cells[i]
        else labelled = labelled (labelled == "" ? "" : "; ") "*" header[i] "*: " cells[i]
    }
    text = labelled
    if (plain != "") text = text (text == "" ? "" : " — ") plain
    print rewrite_links(cells[1] == "" ? "(none)" : cells[1])
    print ": " rewrite_links(text)
    print ""
}

/^```/ { fenced = !fenced; print; next }
fenced { print; next }
!seen_title && /^# / { seen_title = 1; next }
/^\|/ {
    if (table_row == 0) split_row($0, header)
    else if (table_row > 1) print_table_row($0)
    ++table_row
    next
}
{ table_row = 0 }
{ print rewrite_links($0) }
