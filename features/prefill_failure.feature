@prefill @destructive
Feature: Prefill failure
  When a prefill node dies or hangs, the decode side must keep serving on its own (degraded,
  non-disaggregated mode), and the deployment must go back to disaggregated when it returns.

  Scenario: The only prefill node is killed
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 4 concurrent users
    When the prefill node is killed after 1500ms for 2s
    And the load runs for 6s
    Then the success rate over the whole run is at least 97%
    And requests are served decode-only within 1s of the fault
    And requests are served disaggregated again within 2s of the heal
    And every completed answer is complete

  Scenario: One of two prefill nodes is killed
    Given a local P/D deployment with 2 prefill and 1 decode nodes
    And a load of 4 concurrent users
    When the prefill node is killed after 1500ms for 2s
    And the load runs for 5s
    Then the success rate over the whole run is at least 97%
    And requests are served disaggregated within 1s of the fault
    And every completed answer is complete

  Scenario: The only prefill node hangs with its sockets open
    Given a local P/D deployment with 1 prefill and 1 decode node
    And a load of 4 concurrent users
    When the prefill node is paused after 1500ms for 2s
    And the load runs for 6s
    Then requests are served decode-only within 1500ms of the fault
    And the success rate over the whole run is at least 95%
    And no request took longer than 10s
    And every completed answer is complete
