//! Packing items into bounded groups, in order: queue messages under the size limit, messages per
//! `sendBatch`, rows per consumer transaction, rows per spool object.

/// Splits `items` into consecutive groups, keeping their order, so that each group's total `weight`
/// stays within `max_weight` and its length within `max_len`. An item heavier than `max_weight` alone
/// gets a group of its own (nothing is dropped); no group is empty.
pub fn pack<T>(
    items: impl IntoIterator<Item = T>,
    max_weight: usize,
    max_len: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<Vec<T>> {
    let mut groups: Vec<Vec<T>> = Vec::new();
    let mut current: Vec<T> = Vec::new();
    let mut total = 0usize;
    for item in items {
        let w = weight(&item);
        if !current.is_empty() && (total.saturating_add(w) > max_weight || current.len() >= max_len)
        {
            groups.push(std::mem::take(&mut current));
            total = 0;
        }
        total = total.saturating_add(w);
        current.push(item);
    }
    if !current.is_empty() {
        groups.push(current);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_stay_within_weight_and_length_in_order() {
        let groups = pack(1..=10usize, 10, 3, |&w| w);
        assert_eq!(
            groups,
            vec![
                vec![1, 2, 3],
                vec![4, 5],
                vec![6],
                vec![7],
                vec![8],
                vec![9],
                vec![10]
            ]
        );
        let groups = pack([1usize; 7], 100, 3, |&w| w);
        assert_eq!(
            groups.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
    }

    #[test]
    fn an_item_over_the_limit_gets_its_own_group_and_nothing_is_lost() {
        let groups = pack([2usize, 50, 2, 2], 10, 100, |&w| w);
        assert_eq!(groups, vec![vec![2], vec![50], vec![2, 2]]);
        assert!(pack(Vec::<usize>::new(), 10, 10, |&w| w).is_empty());
    }

    #[test]
    fn property_every_item_once_in_order_and_groups_within_bounds() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..500 {
            let n = (next() % 60) as usize;
            let items: Vec<usize> = (0..n).map(|_| (next() % 40) as usize).collect();
            let max_weight = 1 + (next() % 80) as usize;
            let max_len = 1 + (next() % 10) as usize;
            let groups = pack(items.clone(), max_weight, max_len, |&w| w);
            assert_eq!(groups.concat(), items);
            for g in &groups {
                assert!(!g.is_empty() && g.len() <= max_len);
                assert!(g.len() == 1 || g.iter().sum::<usize>() <= max_weight);
            }
        }
    }
}
