package command

// Subsume is the value of an OpSubsume command, in the log of the right
// range of a merge (kv/store/merge.go): from its entry on, the range,
// whose leader saw span [Lo, Hi), serves nothing and waits to be merged
// into range Into, its left neighbour.
type Subsume struct {
	Into uint64 `json:"into"`
	Lo   uint64 `json:"lo"`
	Hi   uint64 `json:"hi"`
}

// Merge is the value of an OpMerge command, in the log of the left range
// of a merge: the range, whose span ends at Lo, takes range Right, span
// [Lo, Hi), which was subsumed at index SubsumeIndex of its log and whose
// replicas, one on each of Voters (the left range's Raft configuration
// when its leader proposed the merge), have all applied that index.
type Merge struct {
	Right        uint64   `json:"right"`
	Lo           uint64   `json:"lo"`
	Hi           uint64   `json:"hi"`
	SubsumeIndex uint64   `json:"subsume_index"`
	Voters       []uint64 `json:"voters"`
}
