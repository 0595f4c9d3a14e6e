@degraded @destructive
Feature: Degraded-mode load
  Serving degraded costs TTFT and decode rate; the cost must stay within stated bounds.

  Scenario: Decode-only serving under load
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 8 concurrent users
    When the prefill node is killed after 1500ms for 3s
    And the load runs for 5s
    Then TTFT p90 during the fault is below 1500 ms
    And the decode rate p50 during the fault is at least 20 tokens/s
    And the success rate during the fault is at least 99%

  Scenario: Prefill-only serving under load
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 8 concurrent users
    When the decode node is killed after 1500ms for 3s
    And the load runs for 5s
    Then TTFT p90 during the fault is below 1500 ms
    And the decode rate p50 during the fault is at least 20 tokens/s
