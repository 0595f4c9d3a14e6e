@recovery @destructive
Feature: Recovery
  When the failed side returns, the deployment must go back to disaggregated serving within a
  bound, and its metrics must return to within a tolerance of the pre-fault baseline.

  Scenario: Prefill returns and the metrics return to the baseline
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 4 concurrent users
    When the prefill node is killed after 2s for 1500ms
    And the load runs for 7s
    Then requests are served disaggregated again within 2s of the heal
    And TTFT p90 after the fault is within 200% of before the fault
    And the success rate after the fault is at least 99%
