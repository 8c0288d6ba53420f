package pgtest

import "fmt"

// PartitionedWrites touch every member of PartitionedDDL's table ev (seeded
// with PartitionedSeed): the parent, a leaf, the sub-partitioned partition,
// rows moved across partitions both ways. Each is a statement of its own.
var PartitionedWrites = []string{
	"INSERT INTO ev VALUES (1001, '2023-06-01', 'p'), (1002, '2024-06-01', 'p')",
	"INSERT INTO ev_2023 VALUES (1003, '2023-07-01', 'leaf')",
	"INSERT INTO ev_2024 VALUES (1004, '2024-07-01', 'mid')",
	"UPDATE ev_2023 SET v = 'leaf+' WHERE id % 5 = 0",
	"UPDATE ev SET day = day + 365 WHERE day < '2023-03-01'",
	"UPDATE ev_2024 SET id = id + 1 WHERE id % 13 = 0",
	"DELETE FROM ev_2024_h1 WHERE id % 3 = 0",
	"DELETE FROM ev WHERE id % 19 = 0",
}

// AttachPartitionWithRows creates table ev_<year> outside ev, fills it with
// ten rows (ids 4001 to 4010, day January 5th of year, v 'attached') and
// attaches it to ev as the partition of that year. The statements are to run
// one by one, so the rows are committed before the ATTACH.
func AttachPartitionWithRows(year int) []string {
	return []string{
		fmt.Sprintf("CREATE TABLE ev_%d (id int, day date, v text, PRIMARY KEY (id, day))", year),
		fmt.Sprintf("INSERT INTO ev_%d SELECT g, '%d-01-05', 'attached' FROM generate_series(4001, 4010) g", year, year),
		fmt.Sprintf("ALTER TABLE ev ATTACH PARTITION ev_%[1]d FOR VALUES FROM ('%[1]d-01-01') TO ('%[2]d-01-01')", year, year+1),
	}
}
