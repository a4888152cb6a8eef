//! The `rndtest` tool: random test results, to try out a CI set-up and the
//! results analysis without real tests (the original's `kraken_rndtest`).
//!
//! Fields: `count` (how many tests, at least 3; a number or a numeric
//! string; default 10) and `override_result` (the result of the test
//! `test_0_special.manual`; default passed, 1). The test names are the same
//! in every run (seeded), as the original's: three special tests —
//! `test_0_special.unstable` (passes or fails at random),
//! `test_0_special.sporadic` (fails about once in nine runs) and
//! `test_0_special.manual` — then random `test_<animal>_<n>.from.<city>`
//! names with any result. Some tests report performance values (`FPS`,
//! `pressure`, ... with value, iterations, median, min, max, range, stddev,
//! variance, cv), as the original's do.

use rand::prelude::*;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};

use super::{Fields, StepOutcome, StepRun, log};
use crate::model::tc_result;

const CITIES: &[&str] = &[
    "Shanghai",
    "Lagos",
    "Istanbul",
    "Karachi",
    "Mumbai",
    "Moscow",
    "Sao-Paulo",
    "Beijing",
    "Delhi",
    "Seoul",
    "Jakarta",
    "Tokyo",
    "Cairo",
    "Dhaka",
    "Mexico",
    "Kinshasa",
    "London",
    "Bangkok",
    "Tehran",
    "Bogota",
    "Lima",
    "Hanoi",
    "Singapore",
    "Santiago",
    "Ankara",
    "Johannesburg",
    "Sydney",
    "Los-Angeles",
    "Melbourne",
    "Cape-Town",
    "Berlin",
    "Nairobi",
    "Madrid",
    "Pune",
    "Addis-Ababa",
];

const ANIMALS: &[&str] = &[
    "Aardvark",
    "Albatross",
    "Alligator",
    "Alpaca",
    "Ant",
    "Badger",
    "Bat",
    "Bear",
    "Beaver",
    "Bee",
    "Bison",
    "Camel",
    "Cat",
    "Cheetah",
    "Cobra",
    "Crab",
    "Crane",
    "Crow",
    "Deer",
    "Dolphin",
    "Duck",
    "Eagle",
    "Eel",
    "Elephant",
    "Falcon",
    "Ferret",
    "Fox",
    "Frog",
    "Gazelle",
    "Giraffe",
    "Goat",
    "Gorilla",
    "Hamster",
    "Hare",
    "Hawk",
    "Heron",
    "Horse",
    "Hyena",
    "Jaguar",
    "Kangaroo",
    "Koala",
    "Lemur",
    "Lion",
    "Llama",
    "Lobster",
    "Lynx",
    "Magpie",
    "Meerkat",
    "Mole",
    "Moose",
    "Narwhal",
    "Newt",
    "Octopus",
    "Otter",
    "Owl",
    "Panther",
    "Parrot",
    "Pelican",
    "Penguin",
    "Rabbit",
    "Raven",
    "Salmon",
    "Seal",
    "Shark",
    "Sheep",
    "Snail",
    "Spider",
    "Squid",
    "Stork",
    "Swan",
    "Tapir",
    "Tiger",
    "Toad",
    "Turtle",
    "Viper",
    "Walrus",
    "Wasp",
    "Whale",
    "Wolf",
    "Wombat",
    "Yak",
    "Zebra",
];

/// The tests of a run of `count` tests: always the same names.
pub(crate) fn test_names(count: usize) -> Vec<String> {
    let mut names = vec![
        "test_0_special.unstable".to_string(),
        "test_0_special.sporadic".to_string(),
        "test_0_special.manual".to_string(),
    ];
    let mut rng = StdRng::seed_from_u64(1);
    while names.len() < count {
        let animal = ANIMALS[rng.random_range(0..ANIMALS.len())];
        let city = CITIES[rng.random_range(0..CITIES.len())];
        names.push(format!(
            "test_{animal}_{}.from.{city}",
            rng.random_range(0..=100_000)
        ));
    }
    names.truncate(count.max(3));
    names
}

/// Statistics of a random sample, as the original reports them.
fn figure(rng: &mut StdRng) -> Value {
    let range = *[100u32, 1000, 10_000].choose(rng).unwrap_or(&100);
    let size = *[1usize, 10, 50, 100].choose(rng).unwrap_or(&1);
    let mut sample: Vec<f64> = (0..size)
        .map(|_| f64::from(rng.random_range(0..range)))
        .collect();
    let n = sample.len() as f64;
    let mean = sample.iter().sum::<f64>() / n;
    let mut v = Map::new();
    v.insert("value".into(), json!(mean));
    v.insert("iterations".into(), json!(sample.len()));
    if sample.len() > 1 {
        sample.sort_by(f64::total_cmp);
        let min = sample[0];
        let max = sample[sample.len() - 1];
        let variance = sample.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let stddev = variance.sqrt();
        v.insert("median".into(), json!(sample[(sample.len() - 1) / 2]));
        v.insert("min".into(), json!(min));
        v.insert("max".into(), json!(max));
        v.insert("range".into(), json!(max - min));
        v.insert("stddev".into(), json!(stddev));
        v.insert("variance".into(), json!(variance));
        if mean != 0.0 {
            v.insert("cv".into(), json!(stddev / mean));
        }
    }
    Value::Object(v)
}

/// Run an `rndtest` step.
pub(crate) async fn run(run: &StepRun<'_>) -> Result<StepOutcome, String> {
    let f = Fields(run.fields);
    let count = f.u64("count")?.unwrap_or(10);
    if count < 3 {
        return Err(format!("field 'count' must be at least 3, not {count}"));
    }
    let count = usize::try_from(count.min(100_000)).unwrap_or(100_000);
    let manual = match f.u64("override_result")? {
        None => tc_result::PASSED,
        Some(r) if r <= 5 => r as i64,
        Some(r) => {
            return Err(format!(
                "field 'override_result' must be a result 0..5, not {r}"
            ));
        }
    };
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut results = Vec::with_capacity(count);
    for (i, test) in test_names(count).into_iter().enumerate() {
        let status = match i {
            0 => *[tc_result::PASSED, tc_result::FAILED]
                .choose(&mut rng)
                .unwrap_or(&1),
            1 => {
                if rng.random_range(0..9) == 0 {
                    tc_result::FAILED
                } else {
                    tc_result::PASSED
                }
            }
            2 => manual,
            _ => rng.random_range(tc_result::NOT_RUN..=tc_result::UNSUPPORTED),
        };
        let mut r = json!({"cmd": format!("random_test {test}"), "test": test, "status": status});
        let n = rng.random_range(0..=3);
        if n > 0 {
            let names = ["FPS", "pressure", "speed", "duration", "temperature"];
            let mut values = Map::new();
            for name in names.sample(&mut rng, n) {
                values.insert((*name).to_string(), figure(&mut rng));
            }
            r["values"] = Value::Object(values);
        }
        results.push(r);
    }
    log(run, format!("{count} random test results")).await;
    Ok(StepOutcome {
        test_results: results,
        ..StepOutcome::done()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_same_every_time() {
        let a = test_names(10);
        assert_eq!(a, test_names(10));
        assert_eq!(a.len(), 10);
        assert_eq!(a[2], "test_0_special.manual");
        assert!(
            a[5].starts_with("test_") && a[5].contains(".from."),
            "{a:?}"
        );
        let mut unique = a;
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 10);
    }
}
