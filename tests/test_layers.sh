#!/bin/sh
# test_layers.sh: src/ is layered and the layers are kept. Layers, lowest first:
#   engine (with kernels/, its CUDA side) < data < model < train < tasks < cli
# (README.md, "Architecture"). A file in src/L/ may include from its own layer and lower ones only,
# always written "LAYER/name.h"; bare names are allowed only for build_config.h (configure's output)
# and the headers of kernels/. kernels/ may include engine/ and its own headers only. Every .c and
# .h of src/ must sit in a layer folder. Fails with the offending file:line and include.
set -u
src=${top_srcdir:-.}
cd "$src" || exit 1
[ -d src/engine ] || { echo "test_layers: run from the source tree (or set top_srcdir)"; exit 1; }

rank() {
    case $1 in
    engine | kernels) echo 0 ;;
    data) echo 1 ;;
    model) echo 2 ;;
    train) echo 3 ;;
    tasks) echo 4 ;;
    cli) echo 5 ;;
    *) echo -1 ;;
    esac
}

bad=0
# Files outside a layer folder.
for f in src/*.c src/*.h; do
    [ -e "$f" ] || continue
    echo "test_layers: $f: not in a layer folder (src/engine, data, model, train, tasks, cli)"
    bad=$((bad + 1))
done

check_file() {  # $1 file, $2 its layer
    own=$(rank "$2")
    # "line:name" for each #include "name"
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$1" |
        sed 's/^\([0-9]*\):[^"]*"\([^"]*\)".*/\1 \2/' >"$tmp"
    while read -r line inc; do
        case $inc in
        */*)
            to=${inc%%/*}
            r=$(rank "$to")
            if [ "$r" -lt 0 ] || [ ! -f "src/$inc" ]; then
                echo "test_layers: $1:$line: #include \"$inc\": no such header under src/"
                bad=$((bad + 1))
            elif [ "$r" -gt "$own" ]; then
                echo "test_layers: $1:$line: #include \"$inc\": $2 may not include from $to (a higher layer)"
                bad=$((bad + 1))
            fi
            ;;
        build_config.h) ;;
        *)
            if [ -f "kernels/$inc" ]; then
                :
            elif [ -f "$(dirname "$1")/$inc" ] && [ "$2" = kernels ]; then
                :
            else
                echo "test_layers: $1:$line: #include \"$inc\": write it as \"LAYER/$inc\""
                bad=$((bad + 1))
            fi
            ;;
        esac
    done <"$tmp"
}

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for layer in engine data model train tasks cli; do
    for f in src/$layer/*.c src/$layer/*.h; do
        [ -e "$f" ] && check_file "$f" "$layer"
    done
done
for f in kernels/*.cu kernels/*.h; do
    [ -e "$f" ] && check_file "$f" kernels
done

# The check must see the tree: a layer check over no includes proves nothing.
n=$(cat src/*/*.c src/*/*.h kernels/*.cu kernels/*.h | grep -c '^[[:space:]]*#[[:space:]]*include[[:space:]]*"')
if [ "$n" -lt 100 ]; then
    echo "test_layers: only $n project includes found: is this the vlmae source tree?"
    exit 1
fi
if [ "$bad" -ne 0 ]; then
    echo "test_layers: $bad include(s) break the layering"
    exit 1
fi
echo "test_layers: $n project includes, every one from its own or a lower layer"
