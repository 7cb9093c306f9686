package quorum

import (
	"fmt"
	"strconv"
	"strings"
)

// MaxNodeList bounds the nodes a node list may name.
const MaxNodeList = 1024

// NodeList is a cluster described by hand, as kvctl quorum check takes it:
// node i (from 0) has ID i+1 and the name Names[i].
type NodeList struct {
	Nodes []Node
	Names []string
}

// Name returns the name of the node with ID id, or the ID in decimal.
func (l NodeList) Name(id uint64) string {
	if id >= 1 && id <= uint64(len(l.Names)) {
		return l.Names[id-1]
	}
	return strconv.FormatUint(id, 10)
}

// ParseNodeList parses either a count N, meaning nodes n1..nN, or a list
// id[@zone][:weight],... such as "a@east:2,b@east,c@west". Names and zones
// are letters, digits, '_', '-' and '.'; weights are 1 to MaxWeight.
func ParseNodeList(s string) (NodeList, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > MaxNodeList {
			return NodeList{}, fmt.Errorf("%w: %d nodes: want 1 to %d", ErrInvalid, n, MaxNodeList)
		}
		var l NodeList
		for i := 1; i <= n; i++ {
			l.Nodes = append(l.Nodes, Node{ID: uint64(i), Zone: "default"})
			l.Names = append(l.Names, fmt.Sprintf("n%d", i))
		}
		return l, nil
	}
	items := strings.Split(s, ",")
	if len(items) > MaxNodeList {
		return NodeList{}, fmt.Errorf("%w: %d nodes: want at most %d", ErrInvalid, len(items), MaxNodeList)
	}
	var l NodeList
	seen := map[string]bool{}
	for i, item := range items {
		name, weight, err := parseNodeItem(strings.TrimSpace(item))
		if err != nil {
			return NodeList{}, fmt.Errorf("%w: node list item %d %q: %v", ErrInvalid, i+1, item, err)
		}
		if seen[name.name] {
			return NodeList{}, fmt.Errorf("%w: node %q is listed twice", ErrInvalid, name.name)
		}
		seen[name.name] = true
		l.Nodes = append(l.Nodes, Node{ID: uint64(i + 1), Zone: name.zone, Weight: weight})
		l.Names = append(l.Names, name.name)
	}
	return l, nil
}

type nodeName struct{ name, zone string }

func parseNodeItem(item string) (nodeName, int, error) {
	rest, w, hasWeight := strings.Cut(item, ":")
	name, zone, hasZone := strings.Cut(rest, "@")
	weight := 1
	if hasWeight {
		var err error
		if weight, err = strconv.Atoi(w); err != nil || weight < 1 || weight > MaxWeight {
			return nodeName{}, 0, fmt.Errorf("weight %q: want an integer from 1 to %d", w, MaxWeight)
		}
	}
	if !validName(name) {
		return nodeName{}, 0, fmt.Errorf("want id[@zone][:weight] with an id of letters, digits, '_', '-' or '.'")
	}
	if !hasZone {
		zone = "default"
	} else if !validName(zone) {
		return nodeName{}, 0, fmt.Errorf("zone %q: want letters, digits, '_', '-' or '.'", zone)
	}
	return nodeName{name, zone}, weight, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}
